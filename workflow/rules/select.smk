# Stage 6: frames inside the trust window, diverse and capped, go back to DFT. A checkpoint, since
# the next iteration's labelling jobs and the loop's end depend on what it picked. Its report
# holds the facts (converged, DFT spent, frames picked); potforge.loop.stop_decision, the one
# place of the stop rule, turns them into stop or go on (common.smk and finalize ask it).


checkpoint select:
    input:
        trajectories=iteration_trajectories,
        test_set="results/{campaign}/validation/test_set.extxyz",
        dataset="results/{campaign}/iter_{iter}/dataset/summary.json",
    output:
        frames="results/{campaign}/iter_{iter}/select/selected.extxyz",
        report="results/{campaign}/iter_{iter}/select/report.json",
    log:
        "results/{campaign}/logs/iter_{iter}/select.log",
    priority: LOOP_PRIORITY
    conda:
        "../../envs/md.yaml"
    params:
        trust=trust_windows(),
        species=" ".join(SPECIES),
        select=as_json(config["select"]),
        accuracy=config["loop"]["converged_accuracy"],
        iteration=iteration,
    shell:
        "potforge select --trajectories {input.trajectories} --exclude {input.test_set} --trust {params.trust:q}"
        " --species {params.species} --select {params.select:q}"
        " --converged-accuracy {params.accuracy} --dataset-summary {input.dataset}"
        " --iteration {params.iteration}"
        " --out {output.frames} --report {output.report} > {log} 2>&1"
