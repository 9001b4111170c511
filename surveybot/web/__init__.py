"""The web service: health check now; webhooks, uploads, unsubscribe and pages as they come."""
