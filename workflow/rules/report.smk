# The one page people read.


localrules:
    report,
    property,


rule report:
    input:
        lambda wc: [PLAN.property_target(p) for p in PLAN.cfg.properties],
        lambda wc: [s.done for s in plan().stages.values() if s.kind != "predict"],
        spec=lambda wc: summary_spec("report", plan().report_spec(), PLAN.report_target),
    output:
        f"{RESULTS}/report.html",
    log:
        f"{RESULTS}/logs/report.log",
    conda:
        ENV
    params:
        code=code_fingerprint("report"),
    shell:
        "python -m matssl.cli report --spec-file {input.spec:q} --out {output:q} > {log:q} 2>&1"
