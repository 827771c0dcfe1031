# potforge: active learning of NequIP potentials (GPAW labels, NequIP committee, LAMMPS MD).
# Thin on purpose: the logic lives in the `potforge` package (workflow/potforge/).
from snakemake.utils import min_version

min_version("9.0")


# The default campaign, unless --configfile names another (a whole campaign, not a patch).
if not workflow.overwrite_configfiles:

    configfile: "config/config.yaml"


include: "workflow/rules/common.smk"
include: "workflow/rules/sample.smk"
include: "workflow/rules/dft.smk"
include: "workflow/rules/dataset.smk"
include: "workflow/rules/train.smk"
include: "workflow/rules/explore.smk"
include: "workflow/rules/select.smk"
include: "workflow/rules/validate.smk"
include: "workflow/rules/report.smk"


rule all:
    default_target: True
    input:
        campaign_targets(),
