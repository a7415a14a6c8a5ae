"""The stage map: each Dynamics sales process becomes a Pipedrive pipeline, each of its stages a stage.

Dynamics keeps a business process flow per sales process (`workflows`, category 4, primary
entity opportunity) with ordered stages (`processstages`); an opportunity points at its
process (`_processid_value`) and its current stage (`_stageid_value`). Pipedrive has
pipelines of ordered stages, each with a deal probability. The proposal pairs them one to
one, keeps the Dynamics order, and takes each stage's probability from what the open
opportunities in it carry (Dynamics has no probability on a stage).

`stages.yaml` in the mappings dir is this model; a person may rename pipelines and stages,
merge stages (two Dynamics stages naming the same Pipedrive stage), or change probabilities.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, model_validator

from migration_pipeline.mapping.spec import load_model, write_model


STAGES_FILE = "stages.yaml"
BUSINESS_PROCESS_FLOW = 4  # workflows.category
# When no open opportunity shows a stage's probability, one by its place in the sales cycle.
PROBABILITY_BY_CATEGORY = {0: 10, 1: 25, 2: 50, 3: 80}


class StageEntry(BaseModel):
    model_config = ConfigDict(extra="forbid")

    dynamics_stage_id: str
    dynamics_stage: str
    pipedrive_stage: str = Field(min_length=1, max_length=255)
    probability: int | None = Field(default=None, ge=0, le=100)
    opportunities: int = 0


class PipelineEntry(BaseModel):
    model_config = ConfigDict(extra="forbid")

    dynamics_process_id: str
    dynamics_process: str
    pipedrive_pipeline: str = Field(min_length=1, max_length=255)
    stages: list[StageEntry] = Field(min_length=1)

    @property
    def first_stage(self) -> StageEntry:
        return self.stages[0]


class StageMap(BaseModel):
    """Every sales process, in order; the first pipeline takes opportunities that follow no process."""

    model_config = ConfigDict(extra="forbid")

    pipelines: list[PipelineEntry]
    unmapped_opportunities: int = 0  # opportunities whose stage is in no process of the map (reported before load)
    opportunities_without_stage: int = 0  # they go to their pipeline's first stage (reported)

    @model_validator(mode="after")
    def _unique_pipelines(self) -> StageMap:
        names = [pipeline.pipedrive_pipeline for pipeline in self.pipelines]
        if len(names) != len(set(names)):
            raise ValueError("two sales processes name the same Pipedrive pipeline")
        return self

    def stage_for(self, process_id: str | None, stage_id: str | None) -> tuple[str, str] | None:
        """(pipeline, stage) names of a Dynamics process and stage; no stage -> the process's first stage.

        None when the process or the stage is not in the map. Blank ids (None, NaN, "") count as absent.
        """
        process_id = process_id if isinstance(process_id, str) and process_id else None
        stage_id = stage_id if isinstance(stage_id, str) and stage_id else None
        pipelines = self.pipelines
        if process_id:
            pipelines = [p for p in pipelines if p.dynamics_process_id == process_id]
        for pipeline in pipelines:
            if not stage_id:
                return pipeline.pipedrive_pipeline, pipeline.first_stage.pipedrive_stage
            for stage in pipeline.stages:
                if stage.dynamics_stage_id == stage_id:
                    return pipeline.pipedrive_pipeline, stage.pipedrive_stage
        return None


def propose_stage_map(workflows: pd.DataFrame, process_stages: pd.DataFrame, opportunities: pd.DataFrame) -> StageMap:
    """The one-to-one proposal from the extracted `workflows`, `processstages` and `opportunities`."""
    processes = workflows[(workflows["category"] == BUSINESS_PROCESS_FLOW) & (workflows["primaryentity"] == "opportunity")]
    open_opportunities = opportunities[opportunities["statecode"] == 0]
    per_stage = opportunities["_stageid_value"].value_counts()
    pipelines: list[PipelineEntry] = []
    for process in processes.sort_values("name").itertuples():
        stage_rows = process_stages[process_stages["_processid_value"] == process.workflowid]
        stage_rows = stage_rows.sort_values(["stagecategory", "createdon", "versionnumber"])
        stages = []
        for stage in stage_rows.itertuples():
            seen = open_opportunities.loc[open_opportunities["_stageid_value"] == stage.processstageid, "closeprobability"].dropna()
            probability = int(seen.mode().iloc[0]) if len(seen) else PROBABILITY_BY_CATEGORY.get(int(stage.stagecategory))
            stages.append(
                StageEntry(
                    dynamics_stage_id=stage.processstageid,
                    dynamics_stage=stage.stagename,
                    pipedrive_stage=stage.stagename,
                    probability=probability,
                    opportunities=int(per_stage.get(stage.processstageid, 0)),
                )
            )
        if stages:
            pipelines.append(
                PipelineEntry(
                    dynamics_process_id=process.workflowid,
                    dynamics_process=process.name,
                    pipedrive_pipeline=process.name,
                    stages=stages,
                )
            )
    stage_map = StageMap(pipelines=pipelines)
    resolved = [
        stage_map.stage_for(process, stage) is not None
        for process, stage in zip(opportunities["_processid_value"], opportunities["_stageid_value"], strict=True)
    ]
    stage_map.unmapped_opportunities = len(resolved) - sum(resolved)
    stage_map.opportunities_without_stage = int(opportunities["_stageid_value"].isna().sum())
    return stage_map


def write_stage_map(stage_map: StageMap, path: Path) -> None:
    header = (
        "# Dynamics sales processes -> Pipedrive pipelines, stage by stage, in order.\n"
        "# Rename `pipedrive_pipeline` / `pipedrive_stage` freely; two Dynamics stages may name one Pipedrive stage.\n"
        "# Opportunities with no stage go to their pipeline's first stage; with no process, to the first pipeline.\n"
    )
    write_model(stage_map, path, header)


def read_stage_map(path: Path) -> StageMap:
    return load_model(path, StageMap)
