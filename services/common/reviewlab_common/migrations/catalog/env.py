from reviewlab_common.migrations.environment import run

run()
