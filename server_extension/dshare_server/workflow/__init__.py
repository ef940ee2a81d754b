"""Workflows: the workflow.yaml parser, the Argo compiler and the runners."""

from .compiler import CompileContext, CompileError, compile_workflow, to_yaml
from .leases import LeaseView
from .local_runner import LocalRunner, RunnerError
from .problems import Problem, SpecError
from .runs import JobResult, Run
from .spec import Job, Spec, VolumeRef, parse

__all__ = [
    "CompileContext",
    "CompileError",
    "Job",
    "JobResult",
    "LeaseView",
    "LocalRunner",
    "Problem",
    "Run",
    "RunnerError",
    "Spec",
    "SpecError",
    "VolumeRef",
    "compile_workflow",
    "parse",
    "to_yaml",
]
