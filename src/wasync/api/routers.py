"""Every API router, in one list: a feature adds its router here with one line."""

from __future__ import annotations

from fastapi import APIRouter

ROUTERS: list[APIRouter] = []
