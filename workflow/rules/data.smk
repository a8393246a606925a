# Sources to the canonical structure table. The download job reads MP_API_KEY from its environment (it is a
# local job); no `envvars:` directive, which would demand the key on every invocation, cached download or not.


localrules:
    download,


rule download:
    output:
        f"{RESULTS}/download/{{key}}/manifest.json",
    log:
        f"{RESULTS}/logs/download/{{key}}.log",
    params:
        spec=stage_spec("download"),
        dir=stage_dir("download"),
    shell:
        "matssl stage download --spec {params.spec:q} --out {params.dir:q} > {log:q} 2>&1"


rule ingest:
    input:
        stage_inputs("ingest"),
    output:
        f"{RESULTS}/ingest/{{key}}/structures.parquet",
        f"{RESULTS}/ingest/{{key}}/rejected.parquet",
        f"{RESULTS}/ingest/{{key}}/manifest.json",
    log:
        f"{RESULTS}/logs/ingest/{{key}}.log",
    params:
        spec=stage_spec("ingest"),
        dir=stage_dir("ingest"),
    shell:
        "matssl stage ingest --spec {params.spec:q} --out {params.dir:q} > {log:q} 2>&1"


rule splits:
    input:
        stage_inputs("splits"),
    output:
        f"{RESULTS}/splits/{{key}}/folds.json",
        f"{RESULTS}/splits/{{key}}/manifest.json",
    log:
        f"{RESULTS}/logs/splits/{{key}}.log",
    params:
        spec=stage_spec("splits"),
        dir=stage_dir("splits"),
    shell:
        "matssl stage splits --spec {params.spec:q} --out {params.dir:q} > {log:q} 2>&1"
