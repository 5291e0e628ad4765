"""/api/users: the caller's own profile. (Being built: issue 2.)"""

from __future__ import annotations

from aiohttp import web

routes = web.RouteTableDef()
