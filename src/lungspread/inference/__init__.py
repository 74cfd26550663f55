"""lungspread.inference."""
