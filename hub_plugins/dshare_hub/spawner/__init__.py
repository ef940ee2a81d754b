"""dshare spawners: a shared mixin over KubeSpawner and over the local-process spawners."""
