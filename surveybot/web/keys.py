"""The application's typed keys, in one place."""

from __future__ import annotations

from aiohttp import web
from sqlite_utils import Database

from surveybot.config import Settings
from surveybot.dispatcher import Dispatcher
from surveybot.schedule import Planner

SETTINGS = web.AppKey("settings", Settings)
DB = web.AppKey("db", Database)
SECRET = web.AppKey("secret", str)
DISPATCHER = web.AppKey("dispatcher", Dispatcher)
PLANNER = web.AppKey("planner", Planner)
