# Stage 7: the loop's end: the final committee, its model card and the campaign report.


# The loop without stage 7 (`snakemake loop`): the final committee, compiled, and nothing that
# measures it. What benchmarks/campaign.py times against a main that had no validation stage.
rule loop:
    input:
        loop_targets,


rule final:
    input:
        reports=selection_reports,
        members=final_member_files,
        committees=committee_summaries,
        validation="results/{campaign}/final/validation.json",
        validations=iteration_validations,
        check="results/{campaign}/validation/protocol_check.json",
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
        campaign_dir=campaign_folder,
        members=final_member_dirs,
        out_dir=subpath(output.card, parent=True),
    shell:
        "potforge finalize --config {params.config:q} --species {params.species}"
        " --campaign-dir {params.campaign_dir} --reports {input.reports}"
        " --members {params.members} --validation {input.validation}"
        " --protocol-check {input.check} --out-dir {params.out_dir} > {log} 2>&1"
        " && cat {log}"


rule report:
    input:
        card="results/{campaign}/final/model_card.json",
        validation="results/{campaign}/final/validation.json",
    output:
        "results/{campaign}/report.html",
    log:
        "results/{campaign}/logs/report.log",
    conda:
        "../../envs/md.yaml"
    params:
        campaign_dir=subpath(output[0], parent=True),
    shell:
        "potforge report {params.campaign_dir} --out {output} > {log} 2>&1"
