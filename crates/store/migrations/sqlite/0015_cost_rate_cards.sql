-- Cost rate cards: what a CSP pays for its stacks' usage (Azure Stack Hub prices), per
-- partner, and per registration where one stack costs differently. Append-only: the version
-- recorded last for an owner is in force; a NULL card removes it.
CREATE TABLE cost_rate_cards (
    version_id INTEGER PRIMARY KEY,
    owner_kind TEXT NOT NULL CHECK (owner_kind IN ('partner', 'registration')),
    owner_key TEXT NOT NULL,
    rate_card TEXT,
    recorded_at INTEGER NOT NULL
) STRICT;

CREATE INDEX cost_rate_cards_by_owner ON cost_rate_cards (owner_kind, owner_key, version_id);
