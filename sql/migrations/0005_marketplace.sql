-- gigwire marketplace: the index that finds the gigs boosted right now (few of them) so that lists can
-- put them first without sorting every match (rest/gig_search.py merges them with the rest).
CREATE INDEX gigs_boosted_idx ON gigs (boosted_until) WHERE boosted_until IS NOT NULL;
