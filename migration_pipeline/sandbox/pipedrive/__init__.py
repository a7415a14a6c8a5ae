"""The Pipedrive REST API simulator of the embedded sandbox."""

from migration_pipeline.sandbox.pipedrive.app import create_app
from migration_pipeline.sandbox.pipedrive.options import PipedriveOptions

__all__ = ["PipedriveOptions", "create_app"]
