"""The load test's request names: one row each in Locust's statistics and reports."""

PRODUCT = "product page"
REVIEWS_PAGE = "reviews page"
REVIEW = "one review"
RECENT = "newest reviews"  # when the pages a shopper saw were empty
POST = "post review with photo"
OWN_VISIBLE = "own review in listing (token)"
PHOTO_STATUS = "own photo status (token)"
READY = "POST to cutout ready"  # a FLOW row: from the POST to the status saying ready
CUTOUT = "cutout from CDN"
DELETE = "delete own review"  # when a shopper stops: the load leaves the shop as it found it
# Every task's requests: a healthy run has each of these.
TASK_NAMES = (PRODUCT, REVIEWS_PAGE, REVIEW, POST, OWN_VISIBLE, PHOTO_STATUS, READY, CUTOUT)
