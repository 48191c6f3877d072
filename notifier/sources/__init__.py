"""Polled sources of status changes (drop folder, the CRM's order query), run by the scheduler."""
