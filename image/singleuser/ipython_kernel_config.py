# Loaded by every IPython kernel in the dshare single-user image (/etc/ipython), so the
# %dshare_run magic is there in a fresh notebook without a %load_ext.
c = get_config()  # noqa: F821
c.InteractiveShellApp.extensions = ["dshare_server"]
