-- A rate card belongs to a partner, or ('') is shared by an admin with every partner
-- (SPEC §7). Names are unique per owner: two partners may each have a card "standard".
ALTER TABLE rate_card_versions ADD COLUMN owner TEXT COLLATE "C" NOT NULL DEFAULT '';

CREATE INDEX rate_card_versions_by_owner ON rate_card_versions (owner, name, version_id);
