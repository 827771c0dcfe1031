# Stage 2: GPAW single points. An iteration's frames are labelled in chunks of
# dft.frames_per_job, one job per chunk. The number of chunks is known when the DAG is built (the
# sampling plan at iteration 0, the selection cap later; chunks past the end are empty), so no
# checkpoint is needed here. Finished frames live in a content-addressed store outside the jobs'
# outputs, so a killed or failed job never loses them and a rerun computes only what is missing.
# Labelling waits for the protocol check (validate.smk): no budget is spent on a broken protocol.


rule label:
    input:
        frames=frames_to_label,
        check="results/{campaign}/validation/protocol_check.json",
    output:
        labelled="results/{campaign}/iter_{iter}/labels/chunk_{chunk}.extxyz",
        failed="results/{campaign}/iter_{iter}/labels/chunk_{chunk}.failed.extxyz",
        report="results/{campaign}/iter_{iter}/labels/chunk_{chunk}.json",
    log:
        "results/{campaign}/logs/iter_{iter}/labels/chunk_{chunk}.log",
    benchmark:
        "results/{campaign}/logs/iter_{iter}/labels/chunk_{chunk}.benchmark.tsv"
    priority: LOOP_PRIORITY
    conda:
        "../../envs/dft.yaml"
    resources:
        mem_mb=lambda wc, attempt: 4000 * attempt,
        runtime=lambda wc, attempt: 120 * attempt,
        tasks=1,
        mpi="mpiexec",
    params:
        dft=as_json(config["dft"]),
        frames_per_job=config["dft"]["frames_per_job"],
        store="results/{campaign}/dft_store",
        iteration=iteration,
        chunk=chunk_index,
    shell:
        LABEL_COMMAND
