"""What every route depends on: the controller (through its API interface) and job lookup."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, HTTPException, Request

from clusterctl import parsing
from clusterctl.controller.interface import ControllerApi
from clusterctl.store import Job


def controller(request: Request) -> ControllerApi:
    return request.app.state.services  # type: ignore[no-any-return]


ControllerDep = Annotated[ControllerApi, Depends(controller)]
"""A route's parameter: the controller, as the API may see it."""


def load_job(ctl: ControllerApi, job_id: str) -> Job:
    """The job named in a path, or 404; a malformed id is a 422 naming ``JOB``."""
    job = ctl.jobs.get(parsing.parse_job_id(job_id))
    if job is None:
        raise HTTPException(404, f"no such job: {job_id}")
    return job
