"""The shop page: products and their reviews, server-rendered, every image from the CDN edge."""
