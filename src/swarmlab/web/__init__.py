"""Dashboard pages (server-rendered templates and small static scripts) on the api's services."""
