# Configuration validation, wildcard constraints and input functions shared by all stages.
import json
from pathlib import Path
from types import SimpleNamespace

from potforge.config import model_species, validate_config
from potforge.loop import stop_decision
from potforge.errors import ConfigError
from potforge.md.explore import expand_tasks
from potforge.sampling import sample_count
from potforge.train.settings import member_epochs
from potforge.validate.testset import frames_in_test_set
from snakemake.exceptions import WorkflowError

try:
    _validated = validate_config(config)
except ConfigError as exc:
    raise WorkflowError(f"invalid configuration: {exc}") from None
config.clear()
config.update(_validated)

CAMPAIGN = config["campaign"]
REFERENCE_CACHE = "results/references"  # DFT property references, shared by campaigns
SYSTEMS = sorted(config["systems"])
# The test set's size, counted once (its structure files are read here, not per job).
TEST_SET_FRAMES = frames_in_test_set(config["validate"]["test_set"], len(SYSTEMS))
SPECIES = model_species(config)
MEMBERS = range(config["train"]["committee"])
EXPLORE_MODEL = {
    "eager": "model.nequip.zip",
    "compiled": "model.pair_nequip.nequip.pt2",
}[config["loop"]["explore_models"]]
# Scheduling: the loop's own jobs (label, dataset, train, explore, select and the test-set draw
# that select waits for) and the final committee's deploy and validation go before labelling the
# independent test set and the per-iteration summaries, which nothing on that path waits for; those
# fill the cores the loop leaves idle. Without priorities, the test set's seven labelling jobs went
# ahead of the ready select and of the next iteration's labels (default campaign at fc8822d), and
# six summary jobs ran for 42 s before the final deploy (at 0353ca4).
LOOP_PRIORITY = 10


wildcard_constraints:
    campaign=CAMPAIGN,
    iter=r"\d{3}",
    chunk=r"\d{3}",
    member=r"\d+",
    system="|".join(SYSTEMS),
    task=r"\d{3}-[A-Za-z0-9.+-]+",


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
    return f"results/{wildcards.campaign}/iter_{iteration(wildcards) - 1:03d}/select/selected.extxyz"


# One labelling command for training frames and the test set: one DFT code path and store.
LABEL_COMMAND = (
    "potforge label --frames {input.frames} --chunk {params.chunk}"
    " --frames-per-job {params.frames_per_job} --dft {params.dft:q} --store {params.store}"
    " --iteration {params.iteration} --ranks {resources.tasks} --launcher {resources.mpi:q}"
    " --out {output.labelled} --failed {output.failed} --report {output.report} > {log} 2>&1"
)


def chunks_for(frames):
    """Chunk names for a number of frames at dft.frames_per_job per job."""
    per_job = config["dft"]["frames_per_job"]
    return [f"{k:03d}" for k in range(-(-frames // per_job))]


def label_chunks(it):
    """The labelling chunks of one iteration: enough for every frame it can have."""
    if it == 0:
        frames = sum(sample_count(config["systems"][name]) for name in SYSTEMS)
    else:
        frames = config["select"]["max_frames_per_iteration"]
    return chunks_for(frames)


def chunk_index(wildcards):
    """The chunk number of a labelling job."""
    return int(wildcards.chunk)


def labels_so_far(kind):
    """Input function: every labelled (kind='labelled') or quarantined chunk up to this iteration."""
    suffix = {"labelled": ".extxyz", "failed": ".failed.extxyz"}[kind]

    def inputs(wildcards):
        files = []
        for it in range(iteration(wildcards) + 1):
            for chunk in label_chunks(it):
                files.append(
                    f"results/{wildcards.campaign}/iter_{it:03d}/labels/chunk_{chunk}{suffix}"
                )
        return files

    return inputs


def previous_dataset(wildcards):
    """The previous iteration's database, whose splits this iteration keeps (none at 0)."""
    it = iteration(wildcards)
    if it == 0:
        return []
    return f"results/{wildcards.campaign}/iter_{it - 1:03d}/dataset/ase.db"


def previous_option(wildcards, input):
    """The dataset command's --previous option, when there is a previous iteration."""
    return f"--previous {input.previous}" if input.previous else ""


# --- training -------------------------------------------------------------------------------


def member_dir(campaign, it, member):
    """The folder of one committee member."""
    return f"results/{campaign}/iter_{it:03d}/train/member_{member}"


def warm_start_checkpoint(wildcards):
    """The member's previous-iteration package when warm-starting (none at iteration 0).

    The packaged model, not best.ckpt: a checkpoint started from a checkpoint needs the whole
    chain of earlier checkpoints to load, a package stands alone.
    """
    it = iteration(wildcards)
    if it == 0 or not config["train"]["warm_start"]:
        return []
    return (
        f"{member_dir(wildcards.campaign, it - 1, wildcards.member)}/model.nequip.zip"
    )


def warm_start_option(wildcards, input):
    """The train-member command's --init option."""
    return f"--init {input.init}" if input.init else ""


def epochs_of_member(wildcards):
    """Epochs of a member: warm-started, scouting (an iteration before the last) or full."""
    return member_epochs(
        config["train"], iteration(wildcards), config["loop"]["max_iterations"]
    )


def deploy_template(wildcards):
    """Member 0's compiled model and package, for members 1.. to reuse (none for member 0).

    Members of one committee share architecture and data statistics, so their compiled models
    differ only in the weights: a swap in seconds instead of a compile (train/weight_swap.py).
    """
    if int(wildcards.member) == 0:
        return []
    base = member_dir(wildcards.campaign, iteration(wildcards), 0)
    return [f"{base}/model.pair_nequip.nequip.pt2", f"{base}/model.nequip.zip"]


def template_option(wildcards, input):
    """The deploy command's --template-dir option (member 0's folder, for members 1..)."""
    return f"--template-dir {Path(input.template[0]).parent}" if input.template else ""


def committee_files(name):
    """Input function: one file of every member of this iteration's committee."""

    def inputs(wildcards):
        it = iteration(wildcards)
        return [f"{member_dir(wildcards.campaign, it, m)}/{name}" for m in MEMBERS]

    return inputs


# --- exploration and selection --------------------------------------------------------------


def exploration_tasks(system, it):
    """The exploration tasks of one system at one iteration (names and settings)."""
    return expand_tasks(config["systems"][system], it, config["seed"])


def task_settings(wildcards):
    """One exploration task's settings, as JSON."""
    for task in exploration_tasks(wildcards.system, iteration(wildcards)):
        if task["name"] == wildcards.task:
            return as_json(task)
    raise WorkflowError(
        f"no exploration task {wildcards.task} for system {wildcards.system}"
    )


def trust_hi(wildcards):
    """The upper trust level of a system."""
    return config["systems"][wildcards.system]["trust"]["hi"]


def iteration_trajectories(wildcards):
    """Every exploration trajectory of one iteration."""
    it = iteration(wildcards)
    return [
        f"results/{wildcards.campaign}/iter_{it:03d}/explore/{system}/{task['name']}/trajectory.extxyz"
        for system in SYSTEMS
        for task in exploration_tasks(system, it)
    ]


def trust_windows():
    """Every system's trust window, as JSON."""
    return as_json(
        {name: system["trust"] for name, system in config["systems"].items()}
    )


# --- the end of the loop --------------------------------------------------------------------


def final_iteration_index(wildcards):
    """The final iteration, known without the last selection when the cap ends the loop.

    Only iterations before the last one the cap allows can stop the loop early, so the final
    committee's deploy and validation need not wait for the last iteration's exploration and
    selection (which then only tell whether it converged).
    """
    cap = config["loop"]["max_iterations"]
    for it in range(cap - 1):
        done = checkpoints.select.get(campaign=wildcards.campaign, iter=f"{it:03d}")
        with open(done.output.report) as fh:
            if stop_decision(json.load(fh), config["loop"])[0]:
                return it
    return cap - 1


def selection_reports(wildcards):
    """Selection reports from iteration 0 up to the final one (the one whose report says stop)."""
    return [
        checkpoints.select.get(
            campaign=wildcards.campaign, iter=f"{it:03d}"
        ).output.report
        for it in range(final_iteration_index(wildcards) + 1)
    ]


def final_member_files(wildcards):
    """The deployed files of the committee of the final iteration."""
    final = final_iteration_index(wildcards)
    names = (
        "best.ckpt",
        "metrics.json",
        "model.nequip.zip",
        "model.pair_nequip.nequip.pt2",
    )
    return [
        f"{member_dir(wildcards.campaign, final, m)}/{name}"
        for m in MEMBERS
        for name in names
    ]


def committee_summaries(wildcards):
    """The committee summaries of every iteration up to the final one."""
    final = final_iteration_index(wildcards)
    return [
        f"results/{wildcards.campaign}/iter_{it:03d}/train/committee.json"
        for it in range(final + 1)
    ]


def campaign_folder(wildcards, input):
    """results/<campaign>, from the protocol check's path among the inputs."""
    return str(Path(input.check).parent.parent)


def final_member_dirs(wildcards, input):
    """The final members' folders (finalize copies from them)."""
    return sorted({str(Path(f).parent) for f in input.members})


def loop_targets(wildcards):
    """The loop alone (`snakemake loop`): every selection report and the final committee."""
    campaign = SimpleNamespace(campaign=CAMPAIGN)
    return (
        selection_reports(campaign)
        + committee_summaries(campaign)
        + final_member_files(campaign)
    )


def campaign_targets():
    """What `snakemake` builds by default: the final committee, its model card and the report."""
    return [
        f"results/{CAMPAIGN}/final/model_card.json",
        f"results/{CAMPAIGN}/report.html",
    ]


# --- validation ------------------------------------------------------------------------------


def validation_config():
    """What the validation stage reads of the configuration, as JSON."""
    return as_json({k: config[k] for k in ("seed", "systems", "dft", "validate")})


def dft_reference_config(wildcards):
    """What one system's DFT reference reads, as JSON: a changed trust level, exploration plan
    or tolerance must not re-run it (every validation depends on it)."""
    system = config["systems"][wildcards.system]
    picked = {"structure": system["structure"], "validate": system["validate"]}
    return as_json(
        {
            "dft": config["dft"],
            "systems": {wildcards.system: picked},
            "validate": {"properties": config["validate"]["properties"]},
        }
    )


def protocol_check_config():
    """What the protocol check reads, as JSON: a tolerance or a test-set size changed later
    must not re-run it (the whole loop depends on it)."""
    systems = {
        name: {
            "structure": system["structure"],
            "explore": {"tasks": system["explore"]["tasks"]},
        }
        for name, system in config["systems"].items()
    }
    check = {"protocol_check": config["validate"]["protocol_check"]}
    return as_json({"dft": config["dft"], "systems": systems, "validate": check})


def test_set_trajectories(wildcards):
    """Iteration 0's exploration trajectories: the test set's MD frames come from there."""
    return [
        f"results/{wildcards.campaign}/iter_000/explore/{system}/{task['name']}/trajectory.extxyz"
        for system in SYSTEMS
        for task in exploration_tasks(system, 0)
    ]


def test_set_labels(wildcards):
    """The labelled chunks of the independent test set."""
    return [
        f"results/{wildcards.campaign}/validation/labels/chunk_{chunk}.extxyz"
        for chunk in chunks_for(TEST_SET_FRAMES)
    ]


def dft_references(wildcards):
    """The DFT property references of every system that measures properties."""
    return [
        f"results/{wildcards.campaign}/validation/dft_{name}.json"
        for name in SYSTEMS
        if config["systems"][name]["validate"]["properties"]
    ]


def final_models(name):
    """Params function: the final members' files called `name`, from the rule's inputs."""

    def models(wildcards, input):
        return [f for f in input.members if f.endswith(name)]

    return models


def iteration_validations(wildcards):
    """Every iteration's validation up to the final one (when validate.every_iteration)."""
    if not config["validate"]["every_iteration"]:
        return []
    final = final_iteration_index(wildcards)
    return [
        f"results/{wildcards.campaign}/iter_{it:03d}/validate/validation.json"
        for it in range(final + 1)
    ]
