"""What the hub does, independent of HTTP: routers parse requests and call these functions,
and the dashboard and workers can call them too.
"""
