"""The catalog as it was before versioned schemas: users, products, idempotency keys, demo data.

IF NOT EXISTS and ON CONFLICT adopt a database made before migrations existed: its tables and
rows are kept, and the revision is recorded on top of them.
"""

from alembic import op

revision = "0001_catalog_baseline"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        """
        CREATE TABLE IF NOT EXISTS users (
            id           bigint PRIMARY KEY,
            handle       text NOT NULL UNIQUE,
            display_name text NOT NULL
        );
        CREATE TABLE IF NOT EXISTS products (
            id        bigint PRIMARY KEY,
            name      text NOT NULL,
            image_key text
        );
        -- An Idempotency-Key reserves a review id before the shard write, whatever shard
        -- it lands on.
        CREATE TABLE IF NOT EXISTS idempotency_keys (
            user_id      bigint NOT NULL,
            key          text NOT NULL,
            request_hash text NOT NULL,
            review_id    bigint NOT NULL,
            product_id   bigint NOT NULL,
            created_at   timestamptz NOT NULL DEFAULT now(),
            PRIMARY KEY (user_id, key)
        );
        """
    )
    # The demo users and products: the catalog's migrations are their one owner.
    op.execute(
        """
        INSERT INTO users (id, handle, display_name) VALUES
            (1, 'kim', 'Kim'), (2, 'alex', 'Alex'), (3, 'sam', 'Sam'), (4, 'noor', 'Noor'),
            (5, 'loadtest', 'Load Test')
        ON CONFLICT (id) DO NOTHING;
        INSERT INTO products (id, name, image_key)
        SELECT g,
               format('%s %s', (ARRAY['Linen', 'Denim', 'Wool', 'Silk', 'Cotton'])[1 + g % 5],
                      (ARRAY['shirt', 'jacket', 'dress', 'scarf', 'coat', 'skirt'])[1 + g % 6]),
               format('products/%s.jpg', g)
        FROM generate_series(1, 50) AS g
        ON CONFLICT (id) DO NOTHING;
        """
    )


def downgrade() -> None:
    op.execute("DROP TABLE idempotency_keys; DROP TABLE products; DROP TABLE users;")
