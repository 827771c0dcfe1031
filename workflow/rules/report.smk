# Stage 7: the loop's end: the final committee and its model card.


rule final:
    input:
        reports=selection_reports,
        members=final_member_files,
        committees=committee_summaries,
    output:
        card="results/{campaign}/final/model_card.json",
        markdown="results/{campaign}/final/model_card.md",
    log:
        "results/{campaign}/logs/final.log",
    conda:
        "../../envs/md.yaml"
    params:
        config=as_json(config),
        species=" ".join(SPECIES),
        campaign_dir="results/{campaign}",
        members=final_member_dirs,
        out_dir=subpath(output.card, parent=True),
    shell:
        "potforge finalize --config {params.config:q} --species {params.species}"
        " --campaign-dir {params.campaign_dir} --reports {input.reports}"
        " --members {params.members} --out-dir {params.out_dir} > {log} 2>&1"
        " && cat {log}"
