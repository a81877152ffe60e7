#if canImport(Glibc)
import Glibc
#endif

/// A plain pthread (packet threads in the datapath are pthreads too, not Swift tasks).
final class Thread3: @unchecked Sendable {
    private var thread = pthread_t()
    private let body: @Sendable () -> Void

    init(_ body: @escaping @Sendable () -> Void) {
        self.body = body
        let box = Unmanaged.passRetained(self).toOpaque()
        pthread_create(&thread, nil, { raw in
            let me = Unmanaged<Thread3>.fromOpaque(raw!).takeRetainedValue()
            me.body()
            return nil
        }, box)
    }

    func join() {
        pthread_join(thread, nil)
    }
}
