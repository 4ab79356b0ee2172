-- Demo users and products (idempotent).
INSERT INTO users (id, handle, display_name) VALUES
    (1, 'kim', 'Kim'), (2, 'alex', 'Alex'), (3, 'sam', 'Sam'), (4, 'noor', 'Noor'),
    (5, 'loadtest', 'Load Test')
ON CONFLICT (id) DO NOTHING;

INSERT INTO products (id, name, image_key)
SELECT g, format('%s %s', (ARRAY['Linen', 'Denim', 'Wool', 'Silk', 'Cotton'])[1 + g % 5],
                          (ARRAY['shirt', 'jacket', 'dress', 'scarf', 'coat', 'skirt'])[1 + g % 6]),
       format('products/%s.jpg', g)
FROM generate_series(1, 50) AS g
ON CONFLICT (id) DO NOTHING;
