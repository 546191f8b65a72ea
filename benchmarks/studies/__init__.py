"""The studies behind the defaults: analytic and densification masks, PS, tiles."""
