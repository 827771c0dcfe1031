# Stage 2: GPAW single points. A checkpoint splits an iteration's frames into chunks; each chunk
# is one job. Finished frames live in a content-addressed store outside the jobs' outputs, so a
# killed or failed job never loses them and a rerun computes only what is missing.


checkpoint plan_labels:
    input:
        frames_to_label,
    output:
        directory("results/{campaign}/iter_{iter}/labels/todo"),
    log:
        "results/{campaign}/logs/iter_{iter}/labels/plan.log",
    conda:
        "../../envs/dft.yaml"
    params:
        frames_per_job=config["dft"]["frames_per_job"],
    shell:
        "potforge plan-labels --frames {input} --frames-per-job {params.frames_per_job}"
        " --out-dir {output} > {log} 2>&1"


rule label:
    input:
        "results/{campaign}/iter_{iter}/labels/todo/chunk_{chunk}.extxyz",
    output:
        labelled="results/{campaign}/iter_{iter}/labels/done/chunk_{chunk}.extxyz",
        failed="results/{campaign}/iter_{iter}/labels/done/chunk_{chunk}.failed.extxyz",
        report="results/{campaign}/iter_{iter}/labels/done/chunk_{chunk}.json",
    log:
        "results/{campaign}/logs/iter_{iter}/labels/chunk_{chunk}.log",
    benchmark:
        "results/{campaign}/logs/iter_{iter}/labels/chunk_{chunk}.benchmark.tsv"
    conda:
        "../../envs/dft.yaml"
    resources:
        tasks=1,
        mpi="mpiexec",
    params:
        dft=as_json(config["dft"]),
        store="results/{campaign}/dft_store",
        iteration=iteration,
    shell:
        "potforge label --frames {input} --dft {params.dft:q} --store {params.store}"
        " --iteration {params.iteration} --ranks {resources.tasks} --launcher {resources.mpi:q}"
        " --out {output.labelled} --failed {output.failed} --report {output.report} > {log} 2>&1"
