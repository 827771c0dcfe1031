# Stage 5: LAMMPS MD driven by the committee: the eager members through fix external (no
# compile; loop.explore_models: eager) or the compiled ones through potforge's pair style. The
# committee's force deviation is computed every dump and guards end runs that go astray.


rule lammps_plugin:
    output:
        "results/{campaign}/lammps/plugin.path",
    log:
        "results/{campaign}/logs/lammps_plugin.log",
    conda:
        "../../envs/md.yaml"
    shell:
        "potforge build-plugin > {output} 2> {log}"


rule explore:
    input:
        start="results/{campaign}/iter_000/sample/{system}.start.extxyz",
        models=committee_files(EXPLORE_MODEL),
        plugin="results/{campaign}/lammps/plugin.path",
    output:
        trajectory="results/{campaign}/iter_{iter}/explore/{system}/{task}/trajectory.extxyz",
        summary="results/{campaign}/iter_{iter}/explore/{system}/{task}/summary.json",
    log:
        "results/{campaign}/logs/iter_{iter}/explore/{system}/{task}.log",
    priority: LOOP_PRIORITY
    conda:
        "../../envs/md.yaml"
    threads: 1
    resources:
        mem_mb=lambda wc, attempt: 4000 * attempt,
        runtime=lambda wc, attempt: 120 * attempt,
        gpu=0,
    params:
        task=task_settings,
        species=" ".join(SPECIES),
        trust_hi=trust_hi,
        out=subpath(output.summary, parent=True),
    shell:
        "potforge explore --structure {input.start} --models {input.models}"
        " --species {params.species} --task {params.task:q} --trust-hi {params.trust_hi}"
        ' --plugin "$(cat {input.plugin})" --out {params.out} > {log} 2>&1'
