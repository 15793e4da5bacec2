"""Dataset audits: privacy (near copies of real reports and images) and generative fidelity.

    from syncxr.audit.privacy import run_privacy_audit
    from syncxr.audit.fidelity import run_fidelity_audit

Both read the synthetic dataset and the real corpus through the training pair sources
(`syncxr.data.sources`), image features through the QC feature registry (`syncxr.qc.base.FEATURES`).
"""
