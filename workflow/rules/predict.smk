# Predictions for new structures from a property's finetuned models (config `predict:`), and the file a user asks
# for: `snakemake results/predictions/<property>.parquet`.


localrules:
    prediction,


rule predict:
    input:
        stage_inputs("predict"),
    output:
        stage_outputs("predict"),
    log:
        f"{RESULTS}/logs/predict/{{key}}.log",
    conda:
        ENV
    threads: PLAN.cfg.threads
    resources:
        gpu=1,
        mem_mb=8000,
        runtime=60,
    params:
        spec=stage_spec("predict"),
        dir=stage_dir("predict"),
    shell:
        "python -m matssl.cli stage predict --spec {params.spec:q} --out {params.dir:q} --threads {threads} --gpus {resources.gpu:q} > {log:q} 2>&1"


rule prediction:
    input:
        predictions=lambda wc: f"{plan().predict[wc.prop].dir}/predictions.parquet",
        # made from another predict stage (another dataset, method or fraction): re-made, whatever the rerun triggers
        spec=lambda wc: summary_spec(
            f"prediction-{wc.prop}",
            plan().prediction_spec(wc.prop),
            PLAN.prediction_target(wc.prop),
        ),
    output:
        f"{RESULTS}/predictions/{{prop}}.parquet",
    log:
        f"{RESULTS}/logs/predictions/{{prop}}.log",
    conda:
        ENV
    shell:
        "cp {input.predictions:q} {output:q} > {log:q} 2>&1"
