# One self-supervised objective on the pool (scratch: the untrained encoder). GPU when there is one.


rule pretrain:
    input:
        stage_inputs("pretrain"),
    output:
        f"{RESULTS}/pretrain/{{key}}/encoder.pt",
        f"{RESULTS}/pretrain/{{key}}/history.json",
        f"{RESULTS}/pretrain/{{key}}/manifest.json",
    log:
        f"{RESULTS}/logs/pretrain/{{key}}.log",
    threads: PLAN.cfg.threads
    resources:
        gpu=1,
        mem_mb=8000,
        runtime=240,
    params:
        spec=stage_spec("pretrain"),
        dir=stage_dir("pretrain"),
    shell:
        "matssl stage pretrain --spec {params.spec:q} --out {params.dir:q} --threads {threads} --gpus {resources.gpu:q} > {log:q} 2>&1"
