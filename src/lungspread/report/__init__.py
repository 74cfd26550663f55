"""lungspread.report."""
