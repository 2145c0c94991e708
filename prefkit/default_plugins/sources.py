"""Generic dataset sources: any hub dataset, save_to_disk directories, local files."""

from prefkit.hookspecs import hookimpl


@hookimpl
def register_datasets(register):
    from prefkit.data.sources import DiskSource, FileSource, HubSource

    register(HubSource())
    register(DiskSource())
    register(FileSource())
