"""Job records, their submission, locks and the error kinds shared by worker and web."""
