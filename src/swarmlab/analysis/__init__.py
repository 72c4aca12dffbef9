"""Meta-analysis of a collaboration (report and figures) from a hub or an export."""
