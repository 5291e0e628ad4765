-- gigwire gig search at 100,000 gigs (rest/gig_query.py): lists find their page, their keyset
-- (cursor) position and their capped count in indexes alone, and read the table for the page's rows
-- only. Each index's query:
--   gigs_list_idx       every list without search in createdAt order (the default): the page and
--                       deep pages walk (status, created_at, id) in order, a cursor seeks into it
--                       with a row comparison; the filters of the query string (category, budgets,
--                       deadline, skills) and "boosted now?" are checked on the INCLUDE columns, so
--                       the walk is an index-only scan. Replaces gigs_status_created_idx (its
--                       prefix), which recommendations (rest/recommend.py) now use through it.
--   gigs_category_list_idx  the same for lists of one category: their page and their capped count
--                       read the category's entries only. gigs_category_idx stays: a search
--                       within a category ANDs its bitmap with the GIN index's, and the slim
--                       index makes that bitmap for a third of the covering one's reads.
--   gigs_boosted_list_idx  the few gigs boosted now, found and filtered without the table (the
--                       boosted half of every list). Replaces gigs_boosted_idx.
--   gigs_status_deadline_idx  deadline windows (today, this_week, ...): their count and, for a
--                       narrow window, their page; and sortBy deadline in index order (keyset too).
--   gigs_budget_max_idx, gigs_budget_min_idx  sortBy budgetMax / budgetMin in index order, so a
--                       page (or a cursor) reads a page's worth of rows, not every match sorted.
--   gigs_open_search_idx  full-text search of open gigs (the public list): no closed or completed
--                       gig among the candidates to read and drop. gigs_search_idx stays for the
--                       other statuses (my-gigs).
-- sortBy applicationsCount has no index: the count changes with every application, and an index on
-- it would make those updates non-HOT; it sorts the matches (fine for filtered lists).
-- views_count and applications_count are in none of them, so counting a view stays a HOT update.
CREATE INDEX gigs_list_idx ON gigs (status, created_at DESC, id DESC)
    INCLUDE (boosted_until, category, budget_min, budget_max, deadline, skills);
DROP INDEX gigs_status_created_idx;
CREATE INDEX gigs_category_list_idx ON gigs (category, status, created_at DESC, id DESC)
    INCLUDE (boosted_until, budget_min, budget_max, deadline, skills);
CREATE INDEX gigs_boosted_list_idx ON gigs (boosted_until)
    INCLUDE (status, created_at, id, category, budget_min, budget_max, deadline, skills)
    WHERE boosted_until IS NOT NULL;
DROP INDEX gigs_boosted_idx;
CREATE INDEX gigs_status_deadline_idx ON gigs (status, deadline, created_at, id);
CREATE INDEX gigs_budget_max_idx ON gigs (status, budget_max, created_at, id);
CREATE INDEX gigs_budget_min_idx ON gigs (status, budget_min, created_at, id);
CREATE INDEX gigs_open_search_idx ON gigs USING gin (search) WHERE status = 'open';
