# Stage 4: a committee of NequIP members (one job each, side by side on a cluster), each
# warm-started from its previous-iteration package and packaged by its training job (compiled
# for LAMMPS where a compiled model is needed).


rule train_member:
    input:
        train="results/{campaign}/iter_{iter}/dataset/train.extxyz",
        validation="results/{campaign}/iter_{iter}/dataset/validation.extxyz",
        test="results/{campaign}/iter_{iter}/dataset/test.extxyz",
        init=warm_start_checkpoint,
        check="results/{campaign}/validation/protocol_check.json",
    output:
        ckpt="results/{campaign}/iter_{iter}/train/member_{member}/best.ckpt",
        metrics="results/{campaign}/iter_{iter}/train/member_{member}/metrics.json",
        package="results/{campaign}/iter_{iter}/train/member_{member}/model.nequip.zip",
    log:
        "results/{campaign}/logs/iter_{iter}/train/member_{member}.log",
    benchmark:
        "results/{campaign}/logs/iter_{iter}/train/member_{member}.benchmark.tsv"
    priority: LOOP_PRIORITY
    conda:
        "../../envs/train.yaml"
    # One thread: these small models do not scale with threads on a CPU (a member on the default
    # campaign's final data: 31.3 s with 1 thread, 30.5 s with 2; two 1-thread members side by
    # side: 33-36 s each), so two members at once train a committee in about 2/3 of the wall.
    # Cluster profiles set their own (set-threads).
    threads: 1
    resources:
        mem_mb=lambda wc, attempt: 8000 * attempt,
        runtime=lambda wc, attempt: 240 * attempt,
        gpu=0,
    params:
        train=as_json(config["train"]),
        species=" ".join(SPECIES),
        seed=config["seed"],
        epochs=epochs_of_member,
        init=warm_start_option,
        data_dir=subpath(input.train, parent=True),
        out=subpath(output.ckpt, parent=True),
        cache="results/{campaign}/model_cache",
    shell:
        "potforge train-member --train-settings {params.train:q} --species {params.species}"
        " --data-dir {params.data_dir} --member {wildcards.member} --seed {params.seed}"
        " --epochs {params.epochs} --threads {threads} --out {params.out} {params.init}"
        " --protocol-check {input.check} --cache-dir {params.cache}"
        " > {log} 2>&1"


# AOTInductor compile for LAMMPS (about a minute per member on a CPU): needed by the final
# committee, and by exploration only when loop.explore_models is `compiled`. Member 0 compiles;
# the others reuse its compiled code with their own weights (seconds), checked against their
# own model, and compile only where that does not fit.
rule deploy_member:
    input:
        ckpt="results/{campaign}/iter_{iter}/train/member_{member}/best.ckpt",
        package="results/{campaign}/iter_{iter}/train/member_{member}/model.nequip.zip",
        template=deploy_template,
    output:
        lammps="results/{campaign}/iter_{iter}/train/member_{member}/model.pair_nequip.nequip.pt2",
        report="results/{campaign}/iter_{iter}/train/member_{member}/deploy.json",
    log:
        "results/{campaign}/logs/iter_{iter}/train/deploy_{member}.log",
    benchmark:
        "results/{campaign}/logs/iter_{iter}/train/deploy_{member}.benchmark.tsv"
    priority: LOOP_PRIORITY
    conda:
        "../../envs/train.yaml"
    threads: 1
    resources:
        mem_mb=lambda wc, attempt: 4000 * attempt,
        runtime=lambda wc, attempt: 60 * attempt,
    params:
        member_dir=subpath(input.ckpt, parent=True),
        cache="results/{campaign}/model_cache",
        template=template_option,
    shell:
        "potforge deploy --member-dir {params.member_dir} --targets pair_nequip"
        " --cache-dir {params.cache} --threads {threads} {params.template}"
        " --report {output.report} > {log} 2>&1"


rule committee:
    input:
        ckpts=committee_files("best.ckpt"),
        test="results/{campaign}/iter_{iter}/dataset/test.extxyz",
        check="results/{campaign}/validation/protocol_check.json",
    output:
        "results/{campaign}/iter_{iter}/train/committee.json",
    log:
        "results/{campaign}/logs/iter_{iter}/train/committee.log",
    conda:
        "../../envs/train.yaml"
    threads: 1
    shell:
        "potforge committee --members {input.ckpts} --test {input.test} --threads {threads}"
        " --protocol-check {input.check}"
        " --out {output} > {log} 2>&1"
