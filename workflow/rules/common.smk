# Configuration validation, wildcard constraints and input functions shared by all stages.
import json
from pathlib import Path

from potforge.config import validate_config
from potforge.errors import ConfigError
from snakemake.exceptions import WorkflowError

try:
    _validated = validate_config(config)
except ConfigError as exc:
    raise WorkflowError(f"invalid configuration: {exc}") from None
config.clear()
config.update(_validated)

CAMPAIGN = config["campaign"]
SYSTEMS = sorted(config["systems"])


wildcard_constraints:
    campaign=CAMPAIGN,
    iter=r"\d{3}",
    chunk=r"\d{3}",
    system="|".join(SYSTEMS),


def iteration(wildcards):
    """The iteration number of a job."""
    return int(wildcards.iter)


def as_json(section):
    """A configuration section as a JSON string (a params value: changing it reruns the rule)."""
    return json.dumps(section, sort_keys=True)


def system_settings(wildcards):
    """The configuration of one system, as JSON."""
    return as_json(config["systems"][wildcards.system])


def frames_to_label(wildcards):
    """Iteration 0 labels the sampled structures; iteration i labels what i-1 selected."""
    if iteration(wildcards) == 0:
        return expand(
            "results/{campaign}/iter_000/sample/{system}.extxyz",
            campaign=wildcards.campaign,
            system=SYSTEMS,
        )
    raise WorkflowError("iterations after 0 need the selection stage, not built yet")


def label_chunks(campaign, it):
    """The labelling chunks of one iteration (known once its plan_labels checkpoint ran)."""
    todo = checkpoints.plan_labels.get(campaign=campaign, iter=f"{it:03d}").output[0]
    return sorted(glob_wildcards(Path(todo) / "chunk_{chunk}.extxyz").chunk)


def labels_so_far(kind):
    """Input function: every labelled (kind='labelled') or quarantined chunk up to this iteration."""
    suffix = {"labelled": ".extxyz", "failed": ".failed.extxyz"}[kind]

    def inputs(wildcards):
        files = []
        for it in range(iteration(wildcards) + 1):
            for chunk in label_chunks(wildcards.campaign, it):
                files.append(
                    f"results/{wildcards.campaign}/iter_{it:03d}/labels/done/chunk_{chunk}{suffix}"
                )
        return files

    return inputs


def campaign_targets():
    """What `snakemake` builds by default: the stages that exist so far."""
    return [f"results/{CAMPAIGN}/iter_000/dataset/summary.json"]


def previous_dataset(wildcards):
    """The previous iteration's database, whose splits this iteration keeps (none at 0)."""
    it = iteration(wildcards)
    if it == 0:
        return []
    return f"results/{wildcards.campaign}/iter_{it - 1:03d}/dataset/ase.db"


def previous_option(wildcards, input):
    """The dataset command's --previous option, when there is a previous iteration."""
    return f"--previous {input.previous}" if input.previous else ""
