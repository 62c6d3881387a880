from summon.runtime.process import run

run()
