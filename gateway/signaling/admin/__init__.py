"""The admin page and REST API (live calls across instances, hang-up, transfer): `api` holds the routes,
`cluster` the way to the other instances' calls. The credentials check is gateway/signaling/admin_auth.py
(`require_admin`, also used by other admin routes). Imports aiohttp and the signaling package only."""
