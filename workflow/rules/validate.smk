# Stage 7: validation against DFT at the campaign's protocol. The protocol check runs before
# any labelling; the independent test set is drawn once from iteration 0's exploration and
# fresh generator draws, labelled through the same DFT stage and store, and never trained on;
# DFT property references are cached by protocol in results/references (shared by campaigns).


rule protocol_check:
    output:
        "results/{campaign}/validation/protocol_check.json",
    log:
        "results/{campaign}/logs/validation/protocol_check.log",
    benchmark:
        "results/{campaign}/logs/validation/protocol_check.benchmark.tsv"
    conda:
        "../../envs/dft.yaml"
    resources:
        mem_mb=lambda wc, attempt: 4000 * attempt,
        runtime=lambda wc, attempt: 60 * attempt,
    params:
        config=protocol_check_config(),
        cache=REFERENCE_CACHE,
        log_dir="results/{campaign}/logs/validation",
    shell:
        "potforge protocol-check --config {params.config:q} --cache-dir {params.cache}"
        " --log-dir {params.log_dir} --out {output} > {log} 2>&1"


rule dft_reference:
    output:
        "results/{campaign}/validation/dft_{system}.json",
    log:
        "results/{campaign}/logs/validation/dft_{system}.log",
    benchmark:
        "results/{campaign}/logs/validation/dft_{system}.benchmark.tsv"
    conda:
        "../../envs/dft.yaml"
    resources:
        mem_mb=lambda wc, attempt: 4000 * attempt,
        runtime=lambda wc, attempt: 240 * attempt,
    params:
        config=dft_reference_config,
        cache=REFERENCE_CACHE,
        log_dir="results/{campaign}/logs/validation",
    shell:
        "potforge dft-reference --config {params.config:q} --system {wildcards.system}"
        " --cache-dir {params.cache} --log-dir {params.log_dir} --out {output} > {log} 2>&1"


rule test_set:
    input:
        trajectories=test_set_trajectories,
        samples=expand(
            "results/{{campaign}}/iter_000/sample/{system}.extxyz", system=SYSTEMS
        ),
        structures=config["validate"]["test_set"]["structures"],
    output:
        "results/{campaign}/validation/test_set.extxyz",
    log:
        "results/{campaign}/logs/validation/test_set.log",
    priority: LOOP_PRIORITY
    conda:
        "../../envs/dft.yaml"
    params:
        config=validation_config(),
    shell:
        "potforge test-set --config {params.config:q} --trajectories {input.trajectories}"
        " --samples {input.samples} --out {output} > {log} 2>&1"


rule label_test_set:
    input:
        frames="results/{campaign}/validation/test_set.extxyz",
        check="results/{campaign}/validation/protocol_check.json",
    output:
        labelled="results/{campaign}/validation/labels/chunk_{chunk}.extxyz",
        failed="results/{campaign}/validation/labels/chunk_{chunk}.failed.extxyz",
        report="results/{campaign}/validation/labels/chunk_{chunk}.json",
    log:
        "results/{campaign}/logs/validation/labels/chunk_{chunk}.log",
    benchmark:
        "results/{campaign}/logs/validation/labels/chunk_{chunk}.benchmark.tsv"
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
        iteration=0,
        chunk=chunk_index,
    shell:
        LABEL_COMMAND


rule validate_iteration:
    input:
        members=committee_files("model.nequip.zip"),
        labels=test_set_labels,
        references=dft_references,
        check="results/{campaign}/validation/protocol_check.json",
    output:
        "results/{campaign}/iter_{iter}/validate/validation.json",
    log:
        "results/{campaign}/logs/iter_{iter}/validate.log",
    benchmark:
        "results/{campaign}/logs/iter_{iter}/validate.benchmark.tsv"
    conda:
        "../../envs/train.yaml"
    threads: 1
    resources:
        mem_mb=lambda wc, attempt: 4000 * attempt,
        runtime=lambda wc, attempt: 60 * attempt,
    params:
        config=validation_config(),
        species=" ".join(SPECIES),
    shell:
        "potforge validate --config {params.config:q} --species {params.species}"
        " --members {input.members} --test-labels {input.labels}"
        " --references {input.references} --protocol-check {input.check} --iteration {wildcards.iter}"
        " --out {output} > {log} 2>&1"


rule validate_final:
    input:
        members=final_member_files,
        labels=test_set_labels,
        references=dft_references,
        check="results/{campaign}/validation/protocol_check.json",
        plugin="results/{campaign}/lammps/plugin.path",
    output:
        "results/{campaign}/final/validation.json",
    log:
        "results/{campaign}/logs/validation/final.log",
    benchmark:
        "results/{campaign}/logs/validation/final.benchmark.tsv"
    priority: LOOP_PRIORITY
    conda:
        "../../envs/md.yaml"
    threads: 1
    resources:
        mem_mb=lambda wc, attempt: 4000 * attempt,
        runtime=lambda wc, attempt: 120 * attempt,
    params:
        config=validation_config(),
        species=" ".join(SPECIES),
        packages=final_models("model.nequip.zip"),
        compiled=final_models("model.pair_nequip.nequip.pt2"),
        iteration=final_iteration_index,
        md_dir="results/{campaign}/final/md_stability",
    shell:
        "potforge validate --config {params.config:q} --species {params.species}"
        " --members {params.packages} --test-labels {input.labels}"
        " --references {input.references} --protocol-check {input.check} --iteration {params.iteration} --peers"
        ' --compiled {params.compiled} --plugin "$(cat {input.plugin})"'
        " --md-dir {params.md_dir} --out {output} > {log} 2>&1"
