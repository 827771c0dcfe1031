# Stage 1: iteration-0 starting structures, screened for too-close atoms before any DFT.


rule sample:
    output:
        frames="results/{campaign}/iter_000/sample/{system}.extxyz",
        rejected="results/{campaign}/iter_000/sample/{system}.rejected.extxyz",
        start="results/{campaign}/iter_000/sample/{system}.start.extxyz",
    log:
        "results/{campaign}/logs/iter_000/sample/{system}.log",
    conda:
        "../../envs/dft.yaml"
    params:
        settings=system_settings,
        seed=config["seed"],
    shell:
        "potforge sample --system {wildcards.system} --settings {params.settings:q}"
        " --seed {params.seed} --out {output.frames} --rejected {output.rejected}"
        " --start {output.start} > {log} 2>&1"
