"""Revision files of the history store, oldest first by date."""
