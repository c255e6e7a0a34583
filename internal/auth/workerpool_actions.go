package auth

// WorkerPoolManage lets a principal create, change, delete and reset the
// worker pools of a space and drain their workers. Reading pools and their
// workers needs SpaceRead.
const WorkerPoolManage = "worker_pool:manage"
