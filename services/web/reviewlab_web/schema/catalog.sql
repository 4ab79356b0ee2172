-- The catalog cluster: users, products and idempotency keys. Applied by `reviewlab up` (idempotent).
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

-- An Idempotency-Key reserves a review id before the shard write, whatever shard it lands on.
CREATE TABLE IF NOT EXISTS idempotency_keys (
    user_id      bigint NOT NULL,
    key          text NOT NULL,
    request_hash text NOT NULL,
    review_id    bigint NOT NULL,
    product_id   bigint NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (user_id, key)
);
