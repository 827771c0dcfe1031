# Stage 3: all labels so far in one ASE database, a hash-stable split, extxyz per split.


rule dataset:
    input:
        labelled=labels_so_far("labelled"),
        failed=labels_so_far("failed"),
        previous=previous_dataset,
    output:
        db="results/{campaign}/iter_{iter}/dataset/ase.db",
        train="results/{campaign}/iter_{iter}/dataset/train.extxyz",
        validation="results/{campaign}/iter_{iter}/dataset/validation.extxyz",
        test="results/{campaign}/iter_{iter}/dataset/test.extxyz",
        summary="results/{campaign}/iter_{iter}/dataset/summary.json",
    log:
        "results/{campaign}/logs/iter_{iter}/dataset.log",
    priority: LOOP_PRIORITY
    conda:
        "../../envs/dft.yaml"
    params:
        split=as_json(config["dataset"]["split"]),
        max_failed=config["dft"]["max_failed_fraction"],
        iteration=iteration,
        previous=previous_option,
        out_dir=subpath(output.summary, parent=True),
    shell:
        "potforge dataset --labelled {input.labelled} --failed {input.failed}"
        " --split {params.split:q} --iteration {params.iteration}"
        " --max-failed-fraction {params.max_failed} {params.previous}"
        " --out-dir {params.out_dir} > {log} 2>&1"
