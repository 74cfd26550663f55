"""lungspread.data."""
