"""Turning results into text a kernel developer can paste into a reply."""
