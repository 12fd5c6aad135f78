-- Effective-dated pricing (SPEC §5): every change of a subscription's rate card or markup
-- is a version that applies from a billing period on ('' means every period). The version
-- recorded last among those that apply from a period or earlier prices it; as-of reads see
-- only the versions recorded by then. The subscriptions table keeps the latest values.
CREATE TABLE subscription_pricing (
    version_id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    subscription_id TEXT COLLATE "C" NOT NULL REFERENCES subscriptions (subscription_id),
    from_period TEXT COLLATE "C" NOT NULL,
    rate_card TEXT COLLATE "C" NOT NULL,
    markup_percent NUMERIC NOT NULL,
    recorded_at BIGINT NOT NULL
);

CREATE INDEX subscription_pricing_by_subscription
    ON subscription_pricing (subscription_id, version_id);

INSERT INTO subscription_pricing (subscription_id, from_period, rate_card, markup_percent,
                                  recorded_at)
SELECT subscription_id, '', rate_card, markup_percent, created_at FROM subscriptions;
