"""lungspread.training."""
