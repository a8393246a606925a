# Frozen-embedding probes against fingerprint baselines, and the 2-D embedding map, per property.


rule probe:
    input:
        stage_inputs("probe"),
    output:
        stage_outputs("probe"),
    log:
        f"{RESULTS}/logs/probe/{{key}}.log",
    priority: 10  # start as soon as the encoders exist, beside the many short finetuning jobs
    conda:
        ENV
    threads: PLAN.cfg.threads
    resources:
        mem_mb=8000,
        runtime=120,
    params:
        spec=stage_spec("probe"),
        dir=stage_dir("probe"),
    shell:
        "python -m matssl.cli stage probe --spec {params.spec:q} --out {params.dir:q} --threads {threads} > {log:q} 2>&1"
