"""lungspread.export."""
